"""`python -m rbiqa.clean [hydra overrides]`."""

from omegaconf import DictConfig

from rbiqa.clean.stage import run
from rbiqa.config import stage_main


@stage_main
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
