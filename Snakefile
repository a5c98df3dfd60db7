# Index only: the rules live in workflow/rules/, the logic in the rbiqa package (src/rbiqa).
configfile: "conf/pipeline.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/rephrase.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate_generate.smk"
include: "workflow/rules/evaluate_judge.smk"
include: "workflow/rules/mine.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        P.REPORT_PDF.as_posix(),
