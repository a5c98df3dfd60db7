"""`python -m rbiqa.clean [hydra overrides]`"""

from rbiqa.clean.stage import run
from rbiqa.config import stage_main

main = stage_main(run)

if __name__ == "__main__":
    main()
