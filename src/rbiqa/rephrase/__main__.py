"""`python -m rbiqa.rephrase [hydra overrides]`"""

from rbiqa.config import stage_main
from rbiqa.rephrase.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
