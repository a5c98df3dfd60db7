# Index only: the rules live in workflow/rules/, the logic in the rbiqa package (src/rbiqa).
configfile: "conf/pipeline.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        P.SPLIT_REPORT.as_posix(),
        MODEL_MANIFEST,
