"""`python -m rbiqa.report [hydra overrides]`"""

from rbiqa.config import stage_main
from rbiqa.report.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
