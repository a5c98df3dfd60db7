# Stage 6: answer every eval set with every arm. One job = one arm x one eval set, so a new arm or a
# changed eval set reruns only its own jobs; the model is loaded once per job.
# Targets: P.generations(arm, eval_set) and its manifest, for each arm in ARMS and each set in EVAL_SETS.
# The eval set is passed as a top-level `+eval_set=` override (as the judge rule does), not as a key of the
# generate group, so the generate stamp is one per arm and covers all of its eval sets.
rule generate:
    input:
        unpack(generate_inputs),
    output:
        generations=P.generations("{arm}", "{eval_set}").as_posix(),
        manifest=P.manifest_for(P.generations("{arm}", "{eval_set}")).as_posix(),
    log:
        log_path("generate/{arm}/{eval_set}"),
    benchmark:
        bench_path("generate/{arm}/{eval_set}")
    conda:
        "../envs/rbiqa.yaml"
    # One thread per job: on the 2-core default, two single-threaded jobs beat one two-threaded job, and
    # an oversubscribed OpenMP pool (2 threads competing with other jobs) was measured 10x slower.
    threads: 1
    resources:
        mem_mb=4000 if EXP == "default" else 24000,
        runtime=30 if EXP == "default" else 120,
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.generate {params.hydra} arm={wildcards.arm} +eval_set={wildcards.eval_set}"
        " > {log} 2>&1"
