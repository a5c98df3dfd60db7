"""`python -m rbiqa.generate experiment=<exp> arm=<arm> 'eval_sets=[a,b]'`"""

from rbiqa.config import stage_main
from rbiqa.generate.stage import run

main = stage_main(run)

if __name__ == "__main__":
    main()
