"""`python -m rbiqa.figures [hydra overrides]`"""

from rbiqa.config import stage_main
from rbiqa.figures.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
