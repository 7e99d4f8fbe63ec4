"""Runtime helpers shared by every chexbench stage (no stage logic lives here)."""
