# Stage 3: k rephrasings per train question + one held-out rephrasing per para_eval source.
# Backend = Hydra group rephrase/ (hf_local = offline CPU default, gemini = paper scale).
# Targets: P.REPHRASE_TRAIN, P.REPHRASE_TEST_PARA, P.REPHRASE_REJECTED, P.REPHRASE_REPORT.

_REPHRASE_CFG = _compose([f"experiment={EXP}", *OVERRIDES]).rephrase
# The prompt file is an input: editing it reruns the stage (its sha256 also keys the cache).
REPHRASE_PROMPT = (
    f"src/rbiqa/rephrase/prompts/rephrase_{_REPHRASE_CFG.prompt_version}.txt"
)
# A local rephraser reads model weights; a model converted by fetch_model is a DAG dependency.
REPHRASE_MODEL = (
    [f"{_REPHRASE_CFG.model_path}/manifest.json"]
    if _REPHRASE_CFG.backend == "hf_local"
    else []
)


rule rephrase:
    input:
        train=P.SPLIT_TRAIN.as_posix(),
        prompt=REPHRASE_PROMPT,
        model=REPHRASE_MODEL,
        stamp=stamp("rephrase"),
    output:
        train=P.REPHRASE_TRAIN.as_posix(),
        para=P.REPHRASE_TEST_PARA.as_posix(),
        rejected=P.REPHRASE_REJECTED.as_posix(),
        report=P.REPHRASE_REPORT.as_posix(),
        manifest=P.REPHRASE_MANIFEST.as_posix(),
    log:
        log_path("rephrase"),
    benchmark:
        bench_path("rephrase")
    conda:
        "../envs/rbiqa.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.rephrase {params.hydra} > {log} 2>&1"
