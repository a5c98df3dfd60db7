# Stages 1-2 and the base model: raw snapshot, leak-proof split, fetch_model.


rule download_data:
    input:
        stamp=stamp("download_data"),
    output:
        qa=P.RAW_QA.as_posix(),
        unanswerable=P.RAW_UNANSWERABLE.as_posix(),
        general=P.RAW_GENERAL.as_posix(),
        abstention_train=P.RAW_ABSTENTION_TRAIN.as_posix(),
        general_train=P.RAW_GENERAL_TRAIN.as_posix(),
        quarantine=P.RAW_QUARANTINE.as_posix(),
        report=P.RAW_REPORT.as_posix(),
        manifest=P.RAW_MANIFEST.as_posix(),
    log:
        log_path("download_data"),
    benchmark:
        bench_path("download_data")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("download_data", "threads")
    resources:
        mem_mb=res("download_data", "mem_mb"),
        runtime=res("download_data", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.download {params.hydra} > {log} 2>&1"


rule split:
    input:
        qa=P.RAW_QA.as_posix(),
        stamp=stamp("split"),
    output:
        train=P.SPLIT_TRAIN.as_posix(),
        val=P.SPLIT_VAL.as_posix(),
        test_unseen=P.SPLIT_TEST_UNSEEN.as_posix(),
        para=P.SPLIT_PARA_SOURCES.as_posix(),
        report=P.SPLIT_REPORT.as_posix(),
        manifest=P.SPLIT_MANIFEST.as_posix(),
    log:
        log_path("split"),
    benchmark:
        bench_path("split")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("split", "threads")
    resources:
        mem_mb=res("split", "mem_mb"),
        runtime=res("split", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.split {params.hydra} > {log} 2>&1"


rule fetch_model:
    input:
        stamp=stamp("fetch_model"),
    output:
        manifest=MODEL_MANIFEST,
    log:
        log_path("fetch_model"),
    benchmark:
        bench_path("fetch_model")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("fetch_model", "threads")
    resources:
        mem_mb=res("fetch_model", "mem_mb"),
        runtime=res("fetch_model", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.fetch_model {params.hydra} > {log} 2>&1"
