"""One module per axis of the known-answer sets. Each offers `command`, its `chexbench-validate build <axis>`
subcommand (made with `common.build_command`, so every axis takes --pool-prompts, --pool-root, --out and --seed),
which writes its sets under OUT/<set_id>/ and their rows into OUT/plan.csv."""
