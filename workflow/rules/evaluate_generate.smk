# Stage 6: answer every eval set with every arm. One job = one arm, all eval sets: importing torch and
# loading + NF4-round-tripping the weights cost about as much as answering one set on CPU, so they are paid
# once per arm. A changed eval set reruns the arm's job, whose per-item cache answers the unchanged sets.
# Targets: P.generations(arm, eval_set) and its manifest, for each arm in ARMS and each set in EVAL_SETS.
# The sets are passed as a top-level `eval_sets=` override (as the judge rule does), not as a key of the
# generate group, so the generate stamp is one per arm and covers all of its eval sets.
rule generate:
    input:
        unpack(generate_inputs),
    output:
        generations=[P.generations("{arm}", e).as_posix() for e in EVAL_SETS],
        manifests=[
            P.manifest_for(P.generations("{arm}", e)).as_posix() for e in EVAL_SETS
        ],
    log:
        log_path("generate/{arm}"),
    benchmark:
        bench_path("generate/{arm}")
    priority: generate_priority
    conda:
        "../envs/rbiqa.yaml"
    threads: res("generate", "threads")
    resources:
        mem_mb=res("generate", "mem_mb"),
        runtime=res("generate", "runtime"),
    params:
        hydra=HYDRA,
        eval_sets=EVAL_SETS_OVERRIDE,
    shell:
        "python -m rbiqa.generate {params.hydra} arm={wildcards.arm} {params.eval_sets} > {log} 2>&1"
