# Hard-negative mining for the refine arms (ft_k3_hardneg and its control): the mining set (training rows
# that are no eval item, built by clean) answered with the adapter each refine arm starts from, then
# judged by the study's judge. One job per mined arm (STUDY.mined_arms: the adapter_of of the refine
# arms); the train rule picks a refine arm's rows from these judgments (rbiqa.train.round).
# Targets: P.generations(arm, train_mining), P.judgments(arm, train_mining) and their manifests.
MINED_ARM_PATTERN = (
    "|".join(re.escape(a) for a in STUDY.mined_arms)
    if STUDY.mined_arms
    else "NO_MINED_ARMS"
)


rule mine:
    input:
        # what the arm's generate job reads for the mining set, and what the judge reads to judge it
        unpack(mine_inputs),
        # after the arm's own judge job: under SLURM an arm's judge cache (data/cache/judge/arms/<arm>) is
        # opened by one job at a time, its locks not holding across hosts (judge.cache_scope)
        after_judge=[P.judgments("{arm}", e).as_posix() for e in EVAL_SETS],
    output:
        generations=P.generations("{arm}", P.TRAIN_MINING).as_posix(),
        generations_manifest=P.manifest_for(
            P.generations("{arm}", P.TRAIN_MINING)
        ).as_posix(),
        judgments=P.judgments("{arm}", P.TRAIN_MINING).as_posix(),
        judgments_manifest=P.manifest_for(
            P.judgments("{arm}", P.TRAIN_MINING)
        ).as_posix(),
    log:
        log_path("mine/{arm}"),
    benchmark:
        bench_path("mine/{arm}")
    wildcard_constraints:
        arm=MINED_ARM_PATTERN,
    # the refine arms' train jobs wait on it
    priority: 5
    conda:
        "../envs/rbiqa.yaml"
    threads: res("mine", "threads")
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
    params:
        hydra=HYDRA,
        eval_sets=shlex.quote(f"eval_sets=[{P.TRAIN_MINING}]"),
    shell:
        "(python -m rbiqa.generate {params.hydra} arm={wildcards.arm} {params.eval_sets}"
        " && python -m rbiqa.judge {params.hydra} arm={wildcards.arm} {params.eval_sets}) > {log} 2>&1"
