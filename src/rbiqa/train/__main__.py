"""`python -m rbiqa.train experiment=<exp> arm=<arm>`"""

from rbiqa.config import stage_main
from rbiqa.train.run import run_stage

main = stage_main(run_stage)

if __name__ == "__main__":
    main()
