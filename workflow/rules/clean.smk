# Stage 4: PII, dedup, train/test contamination audit, evaluation sets.
# Targets: P.CLEAN_TRAIN, P.CLEAN_VAL, P.CLEAN_VAL_PARA, the mix pools (P.MIX_POOLS), P.eval_set_path(<set>)
# for each eval set, P.CLEAN_REPORT, P.CONTAMINATION.


rule clean:
    input:
        **S.for_rule(S.clean_inputs()),
    output:
        **S.for_rule(S.clean_outputs()),
        manifest=P.CLEAN_MANIFEST.as_posix(),
    log:
        log_path("clean"),
    benchmark:
        bench_path("clean")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("clean", "threads")
    resources:
        mem_mb=res("clean", "mem_mb"),
        runtime=res("clean", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.clean {params.hydra} > {log} 2>&1"
