"""Training entry points, one module per stage with ``main(argv) -> int``; ``trl-latent <stage>`` dispatches here and
``accelerate launch -m trl_latent.scripts.<stage>`` runs the same module on several GPUs."""

from ..cli import quiet_deepspeed

quiet_deepspeed()  # here too, for `accelerate launch -m trl_latent.scripts.<stage>`, before the stage imports TRL
