# Stages 1-2 and the base model: raw snapshot, leak-proof split, fetch_model.


rule download_data:
    input:
        **S.for_rule(S.download_inputs(CFG.data)),
    output:
        **S.for_rule(S.download_outputs()),
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
        **S.for_rule(S.split_inputs()),
    output:
        **S.for_rule(S.split_outputs()),
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
