# Stage 7: judge every (arm, eval set) generation file, then measure how far the judges can be trusted.
# The backend is the Hydra group judge/ (reference = offline default, gemini = paper scale,
# openai_compatible = any chat-completions server, hf_local = a local model).
# Targets: P.judgments(arm, eval_set) for each arm and eval set, and P.JUDGE_AGREEMENT.

from rbiqa.judge.reference import DEFAULT_PARAMS as _REFERENCE_PARAMS


localrules:
    judge_agreement,


# One job = one arm, all eval sets: the reference judge's embedding model (or the API client) is set up
# once per arm rather than once per set.
rule judge:
    input:
        # the generations, the eval items, the files that decide verdicts besides the data (the
        # configured rubric prompts or the reference judge's parameters, and the abstention exemplars)
        **S.for_rule(S.judge_inputs(CFG.judge, "{arm}", EVAL_SETS)),
    output:
        judgments=[P.judgments("{arm}", e).as_posix() for e in EVAL_SETS],
        manifests=[
            P.manifest_for(P.judgments("{arm}", e)).as_posix() for e in EVAL_SETS
        ],
    log:
        log_path("judge/{arm}"),
    benchmark:
        bench_path("judge/{arm}")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("judge", "threads")
    resources:
        mem_mb=res("judge", "mem_mb"),
        runtime=res("judge", "runtime"),
    params:
        hydra=HYDRA,
        eval_sets=EVAL_SETS_OVERRIDE,
    shell:
        "python -m rbiqa.judge {params.hydra} arm={wildcards.arm} {params.eval_sets} > {log} 2>&1"


# Human labels (data/labels/*.csv, written by `python -m rbiqa.judge.labels ingest`, and the optional
# judge.agreement.human_labels_csv) are inputs: a new or changed label file reruns the agreement.
# Generations are read to leave out labels of answers that have changed since they were labelled.
HUMAN_LABELS = [p.as_posix() for p in P.label_files()]
if CFG.judge.agreement.get("human_labels_csv"):
    HUMAN_LABELS.append(str(CFG.judge.agreement.human_labels_csv))


rule judge_agreement:
    input:
        judgments=[P.judgments(a, e).as_posix() for a in ARMS for e in EVAL_SETS],
        generations=[P.generations(a, e).as_posix() for a in ARMS for e in EVAL_SETS],
        labels=HUMAN_LABELS,
        params=S.repo_relative(_REFERENCE_PARAMS).as_posix(),
        stamp=stamp("judge_agreement"),
    output:
        agreement=P.JUDGE_AGREEMENT.as_posix(),
        confusion=P.JUDGE_CONFUSION.as_posix(),
        manifest=P.manifest_for(P.JUDGE_AGREEMENT).as_posix(),
    log:
        log_path("judge_agreement"),
    benchmark:
        bench_path("judge_agreement")
    conda:
        "../envs/rbiqa.yaml"
    threads: res("judge_agreement", "threads")
    resources:
        mem_mb=res("judge_agreement", "mem_mb"),
        runtime=res("judge_agreement", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.judge.agreement {params.hydra} > {log} 2>&1"
