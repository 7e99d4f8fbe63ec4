"""`python -m chexbench_llava_report ...`: what `accelerate launch -m` and `torchrun -m` start on every rank."""

from .cli import main

main()
