"""`python -m rbiqa.judge experiment=<exp> arm=<arm> 'eval_sets=[a,b]'`"""

from rbiqa.config import stage_main
from rbiqa.judge.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
