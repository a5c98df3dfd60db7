"""`python -m rbiqa.judge experiment=<exp> arm=<arm> 'eval_sets=[a,b]'` (or `+eval_set=<set>`)"""

from rbiqa.config import stage_main
from rbiqa.judge.stage import main

if __name__ == "__main__":
    stage_main(main)()
