# Stage 5: QLoRA fine-tuning, one job per trained arm (FT_ARMS: the study's arms of kinds finetune and
# refine; a refine arm continues another arm's adapter for a short round, on rows the mine rule found).
# Targets: results/<arm>/adapter/{adapter_model.safetensors, adapter_config.json, trainer_log.csv,
# train_summary.json, manifest.json}. Checkpoints go to results/<arm>/checkpoints/, a scratch dir that is
# not an output: an interrupted job resumes from it when rerun with the same config and data, and a
# successful one deletes it (train.keep_checkpoints).
# GPUs: rules declare no GPU resource. profiles/slurm adds `gpu` (sbatch --gpus) for this rule through
# set-resources; locally the job uses CUDA whenever it sees a device, CPU otherwise.
import re

TRAIN_OUTPUTS = {
    "adapter": "adapter_model.safetensors",
    "adapter_config": "adapter_config.json",
    "trainer_log": "trainer_log.csv",
    "summary": "train_summary.json",
    "manifest": "manifest.json",
}
# Only fine-tuned arms have a train job; a prompting arm must not match {arm} here.
TRAIN_ARM_PATTERN = "|".join(re.escape(a) for a in FT_ARMS) if FT_ARMS else "NO_FT_ARMS"


rule train:
    input:
        unpack(train_inputs),
    output:
        **{
            k: (P.adapter_dir("{arm}") / name).as_posix()
            for k, name in TRAIN_OUTPUTS.items()
        },
    log:
        log_path("train/{arm}"),
    benchmark:
        bench_path("train/{arm}")
    wildcard_constraints:
        arm=TRAIN_ARM_PATTERN,
    # before the prompting arms' generate jobs: the fine-tuned arms' generate and judge jobs wait on it
    priority: 10
    conda:
        "../envs/rbiqa.yaml"
    # conf/resources/: torch gets the job's threads as its intra-op threads (passed below)
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.train {params.hydra} arm={wildcards.arm} train.threads={threads} > {log} 2>&1"


# Optional, not part of `all`: merge the adapter into full-precision base weights (results/<arm>/merged/).
#   snakemake --cores 2 results/ft_k3/merged/model.safetensors
rule export:
    input:
        adapter=(P.adapter_dir("{arm}") / "adapter_model.safetensors").as_posix(),
        adapter_config=(P.adapter_dir("{arm}") / "adapter_config.json").as_posix(),
        model=MODEL_MANIFEST,
        stamp=stamp("train", "{arm}"),
    output:
        model=(P.arm_dir("{arm}") / "merged" / "model.safetensors").as_posix(),
        config=(P.arm_dir("{arm}") / "merged" / "config.json").as_posix(),
        manifest=(P.arm_dir("{arm}") / "merged" / "manifest.json").as_posix(),
    log:
        log_path("export/{arm}"),
    benchmark:
        bench_path("export/{arm}")
    wildcard_constraints:
        arm=TRAIN_ARM_PATTERN,
    conda:
        "../envs/rbiqa.yaml"
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
    params:
        hydra=HYDRA,
    shell:
        "python -m rbiqa.train.export {params.hydra} arm={wildcards.arm} > {log} 2>&1"
