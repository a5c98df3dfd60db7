# Stage 3: k rephrasings per train question + one held-out rephrasing per para_eval / val_para source.
# Backend = Hydra group rephrase/ (shipped = the CPU default's hand-written paraphrases, hf_local = a
# local model, gemini = paper scale, openai_compatible = any such server).
# Targets: P.REPHRASE_TRAIN, P.REPHRASE_TEST_PARA, P.REPHRASE_VAL_PARA, P.REPHRASE_REJECTED, P.REPHRASE_REPORT.
rule rephrase:
    input:
        # the split, the prompt (its sha256 also keys the cache), and the local model's manifest or the
        # shipped paraphrases: the list the stage records in its manifest (rbiqa.stages)
        **S.for_rule(S.rephrase_inputs(CFG.rephrase)),
    output:
        **S.for_rule(S.rephrase_outputs()),
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
