"""`python -m rbiqa.stats [hydra overrides]`"""

from rbiqa.config import stage_main
from rbiqa.stats.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
