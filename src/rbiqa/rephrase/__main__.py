"""`python -m rbiqa.rephrase [hydra overrides]`."""

from omegaconf import DictConfig

from rbiqa.config import stage_main
from rbiqa.rephrase.stage import run


@stage_main
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
