# Stage 4: PII, dedup, train/test contamination audit, evaluation sets.
# Targets: P.CLEAN_TRAIN, P.CLEAN_VAL, P.CLEAN_VAL_PARA, the mix pools (P.MIX_POOLS), P.eval_set_path(<set>)
# for each eval set, P.CLEAN_REPORT, P.CONTAMINATION.


rule clean:
    input:
        train=P.REPHRASE_TRAIN.as_posix(),
        para=P.REPHRASE_TEST_PARA.as_posix(),
        val_para=P.REPHRASE_VAL_PARA.as_posix(),
        val=P.SPLIT_VAL.as_posix(),
        test_unseen=P.SPLIT_TEST_UNSEEN.as_posix(),
        unanswerable=P.RAW_UNANSWERABLE.as_posix(),
        general=P.RAW_GENERAL.as_posix(),
        abstention_train=P.RAW_ABSTENTION_TRAIN.as_posix(),
        general_train=P.RAW_GENERAL_TRAIN.as_posix(),
        stamp=stamp("clean"),
    output:
        train=P.CLEAN_TRAIN.as_posix(),
        val=P.CLEAN_VAL.as_posix(),
        val_para=P.CLEAN_VAL_PARA.as_posix(),
        abstention_train=P.CLEAN_ABSTENTION_TRAIN.as_posix(),
        general_train=P.CLEAN_GENERAL_TRAIN.as_posix(),
        eval_sets=[P.eval_set_path(s).as_posix() for s in P.EVAL_SETS],
        removed=P.CLEAN_REMOVED.as_posix(),
        report=P.CLEAN_REPORT.as_posix(),
        contamination=P.CONTAMINATION.as_posix(),
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
