# Statistics, figures/tables/macros and the PDF report. Final target: P.REPORT_PDF (paper/report.pdf).
# All three are cheap and run on the head node. A report.* config change reruns figures + report only;
# stats depend on the stats.* config and the judgments.
import shlex

from rbiqa.figures.files import MANIFEST as FIGURES_MANIFEST
from rbiqa.stats.files import MANIFEST as STATS_MANIFEST


localrules:
    stats,
    figures,
    report,


rule stats:
    input:
        **S.for_rule(S.stats_inputs(ARMS, EVAL_SETS, NLL_SETS)),
    output:
        S.posix(S.stats_outputs()),
        manifest=STATS_MANIFEST.as_posix(),
    log:
        log_path("stats"),
    benchmark:
        bench_path("stats")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("stats", "threads")
    resources:
        mem_mb=res("stats", "mem_mb"),
        runtime=res("stats", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.stats {params.hydra} > {log} 2>&1"


rule figures:
    input:
        **S.for_rule(S.figures_inputs(FT_ARMS)),
    output:
        S.posix(S.figures_outputs()),
        manifest=FIGURES_MANIFEST.as_posix(),
    log:
        log_path("figures"),
    benchmark:
        bench_path("figures")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("figures", "threads")
    resources:
        mem_mb=res("figures", "mem_mb"),
        runtime=res("figures", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.figures {params.hydra} > {log} 2>&1"


rule report:
    input:
        **S.for_rule(S.report_inputs()),
    output:
        pdf=P.REPORT_PDF.as_posix(),
        manifest=P.manifest_for(P.REPORT_PDF).as_posix(),
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.report {params.hydra} > {log} 2>&1"
