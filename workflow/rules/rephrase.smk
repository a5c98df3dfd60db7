# Stage 3: k rephrasings per train question + one held-out rephrasing per para_eval / val_para source.
# Backend = Hydra group rephrase/ (shipped = the CPU default's hand-written paraphrases, hf_local = a
# local model, gemini = paper scale, openai_compatible = any such server).
# Targets: P.REPHRASE_TRAIN, P.REPHRASE_TEST_PARA, P.REPHRASE_VAL_PARA, P.REPHRASE_REJECTED, P.REPHRASE_REPORT.
from rbiqa.rephrase.stage import stage_inputs as _rephrase_inputs

# The prompt file (its sha256 also keys the cache), and the local model's manifest or the shipped
# paraphrases: the same list the stage records in its manifest.
REPHRASE_INPUTS = [p.as_posix() for p in _rephrase_inputs(CFG.rephrase)]


rule rephrase:
    input:
        train=P.SPLIT_TRAIN.as_posix(),
        backend=REPHRASE_INPUTS,
        stamp=stamp("rephrase"),
    output:
        train=P.REPHRASE_TRAIN.as_posix(),
        para=P.REPHRASE_TEST_PARA.as_posix(),
        val_para=P.REPHRASE_VAL_PARA.as_posix(),
        rejected=P.REPHRASE_REJECTED.as_posix(),
        report=P.REPHRASE_REPORT.as_posix(),
        manifest=P.REPHRASE_MANIFEST.as_posix(),
    log:
        log_path("rephrase"),
    benchmark:
        bench_path("rephrase")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("rephrase", "threads")
    resources:
        mem_mb=res("rephrase", "mem_mb"),
        runtime=res("rephrase", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.rephrase {params.hydra} > {log} 2>&1"
