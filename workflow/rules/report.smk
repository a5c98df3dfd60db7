# Statistics, figures/tables/macros and the PDF report. Final target: P.REPORT_PDF (paper/report.pdf).
# All three are cheap and run on the head node. A report.* config change reruns figures + report only;
# stats depend on the stats.* config and the judgments.
import shlex

from rbiqa.figures.files import MANIFEST as FIGURES_MANIFEST
from rbiqa.figures.files import all_outputs as figures_outputs
from rbiqa.stats.files import MANIFEST as STATS_MANIFEST
from rbiqa.stats.files import all_metric_paths


localrules:
    stats,
    figures,
    report,


rule stats:
    input:
        stamp("stats"),
        judgments=[P.judgments(a, e).as_posix() for a in ARMS for e in EVAL_SETS],
        generations=[P.generations(a, e).as_posix() for a in ARMS for e in NLL_SETS],
        eval_items=[P.eval_set_path(e).as_posix() for e in EVAL_SETS],
        agreement=P.JUDGE_AGREEMENT.as_posix(),
    output:
        _posix(all_metric_paths()),
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
        stamp("figures"),
        metrics=_posix(all_metric_paths()),
        adapters=[
            (P.adapter_dir(a) / n).as_posix()
            for a in FT_ARMS
            for n in ("trainer_log.csv", "manifest.json", "train_summary.json")
        ],
        lineage=lineage_inputs(),
    output:
        _posix(figures_outputs()),
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
        stamp("report"),
        generated=_posix(figures_outputs()),
        sources=paper_sources(),
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
