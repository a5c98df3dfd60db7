"""The paper's figures. Each function takes frames and returns a matplotlib Figure; saving is separate.

Intervals are precomputed by the stats stage (Wilson, paired cluster bootstrap), so the plots draw them
as error bars instead of letting seaborn re-estimate them. A figure whose data did not run becomes a
placeholder that says so: the paper's figure list, and Snakemake's outputs, stay fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def apply_style(style: Mapping) -> None:
    sns.set_theme(
        context=style.get("context", "paper"),
        style=style.get("style", "whitegrid"),
        palette=style.get("palette", "colorblind"),
        font_scale=float(style.get("font_scale", 1.0)),
    )


def placeholder(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _err(est: float, lo: float, hi: float) -> list[list[float]]:
    """Error-bar half-lengths in percent; clipped at 0 against float round-off at p = 0 or 1."""
    return [[max(0.0, 100 * (est - lo))], [max(0.0, 100 * (hi - est))]]


def accuracy_by_arm(
    acc: pd.DataFrame,
    arms: Sequence[str],
    eval_sets: Sequence[str],
    finetuned: Sequence[str],
    set_labels: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Fig. 1: accuracy with Wilson intervals, one panel per eval set (titled from `set_labels`), arms in
    study order."""
    acc = acc[acc["accuracy"].notna()]
    if acc.empty:
        return placeholder("no judged items in any arm")
    n = len(eval_sets)
    ncols = min(n, 4)  # one row: the page is wider than a tall 2x2 grid allows with many arms
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.7 * ncols + 0.8, 0.26 * len(arms) * nrows + 1.4 * nrows),
        sharey=True,
        squeeze=False,
    )
    colours = dict(zip(["prompting baseline", "fine-tuned"], sns.color_palette(n_colors=2), strict=True))
    ypos = {a: i for i, a in enumerate(arms)}
    for ax, e in zip(axes.flat, eval_sets, strict=False):
        d = acc[acc["eval_set"] == e]
        for _, r in d.iterrows():
            c = colours["fine-tuned" if r["arm"] in finetuned else "prompting baseline"]
            ax.errorbar(
                100 * r["accuracy"],
                ypos[r["arm"]],
                fmt="o",
                color=c,
                ms=4,
                capsize=2,
                xerr=_err(r["accuracy"], r["wilson_lo"], r["wilson_hi"]),
            )
        ax.set_title((set_labels or {}).get(e, e).replace(" (", "\n("), fontsize="small")
        ax.set_xlim(0, 100)
        ax.set_xlabel("judge accuracy (%)")
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0, 0].set_yticks(range(len(arms)), arms)
    axes[0, 0].invert_yaxis()
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def forest(paired: pd.DataFrame, ref: str, eval_sets: Sequence[str]) -> plt.Figure:
    """Fig. 2: paired differences vs `ref` (percentage points) with cluster-bootstrap CIs."""
    d = paired[(paired["ref"] == ref) & paired["diff"].notna()] if len(paired) else paired
    if d.empty:
        return placeholder(f"no paired comparison against {ref}")
    arms = list(dict.fromkeys(d["arm"]))
    sets = [e for e in eval_sets if e in set(d["eval_set"])]
    fig, axes = plt.subplots(
        1, len(sets), figsize=(2.6 * len(sets) + 1, 0.3 * len(arms) + 1.3), sharey=True, squeeze=False
    )
    colour = {"higher": sns.color_palette()[2], "lower": sns.color_palette()[3], "inconclusive": "0.35"}
    for ax, e in zip(axes.flat, sets, strict=True):
        de = d[d["eval_set"] == e]
        for _, r in de.iterrows():
            y = arms.index(r["arm"])
            ax.errorbar(
                100 * r["diff"],
                y,
                fmt="s",
                ms=4,
                capsize=2,
                color=colour[r["direction"]],
                xerr=_err(r["diff"], r["diff_lo"], r["diff_hi"]),
            )
        ax.axvline(0, color="0.2", lw=0.8, ls="--")
        ax.set_title(e, fontsize="small")
        ax.set_xlabel(f"difference vs {ref} (pp)")
    axes[0, 0].set_yticks(range(len(arms)), arms)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    return fig


def per_area(
    cat: pd.DataFrame, arms: Sequence[str], eval_sets: Sequence[str], small_colour: str, max_areas: int = 30
) -> plt.Figure:
    """Fig. 3: accuracy per regulation area (Wilson), n annotated, small-n areas greyed and unranked."""
    d = (
        cat[(cat["grouping"] == "regulation_area") & cat["arm"].isin(arms) & cat["eval_set"].isin(eval_sets)]
        if len(cat)
        else cat
    )
    if d.empty:
        return placeholder("no per-area breakdown (base or main arm missing)")
    sets = [e for e in eval_sets if e in set(d["eval_set"])]
    # order: ranked areas by the main (last) arm's accuracy, then the small ones; cap the count
    main = d[d["arm"] == arms[-1]]
    n_by_area = d.groupby("level")["n"].max()
    keep = n_by_area.sort_values(ascending=False).index[:max_areas]
    main = main[main["level"].isin(keep)]
    order = list(
        main.sort_values(["small_n", "accuracy"], ascending=[True, False])["level"].drop_duplicates()
    )
    order += [a for a in keep if a not in order]
    fig, axes = plt.subplots(
        1, len(sets), figsize=(3.6 * len(sets) + 1.5, 0.3 * len(order) + 1.4), sharey=True, squeeze=False
    )
    palette = sns.color_palette(n_colors=len(arms))
    offsets = np.linspace(-0.18, 0.18, len(arms)) if len(arms) > 1 else [0.0]
    for ax, e in zip(axes.flat, sets, strict=True):
        de = d[(d["eval_set"] == e) & d["level"].isin(order)]
        for arm, off, col in zip(arms, offsets, palette, strict=True):
            for _, r in de[de["arm"] == arm].iterrows():
                y = order.index(r["level"]) + off
                c = small_colour if r["small_n"] else col
                ax.errorbar(
                    100 * r["accuracy"],
                    y,
                    fmt="o",
                    ms=3.5,
                    capsize=1.5,
                    color=c,
                    xerr=_err(r["accuracy"], r["wilson_lo"], r["wilson_hi"]),
                )
        ns = de.groupby("level")["n"].max()
        for lvl, nval in ns.items():
            ax.annotate(
                f"n={nval}", (101, order.index(lvl)), fontsize="x-small", va="center", annotation_clip=False
            )
        ax.set_xlim(0, 100)
        ax.set_title(e, fontsize="small")
        ax.set_xlabel("judge accuracy (%)")
    axes[0, 0].set_yticks(range(len(order)), order)
    axes[0, 0].invert_yaxis()
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=a) for a, c in zip(arms, palette, strict=True)
    ]
    handles.append(plt.Line2D([], [], marker="o", ls="", color=small_colour, label="small n (not ranked)"))
    fig.legend(
        handles=handles, loc="lower center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, -0.01)
    )
    fig.tight_layout(rect=(0, 0.06, 0.95, 1))
    return fig


def loss_curves(logs: pd.DataFrame, smoothing: int = 5) -> plt.Figure:
    """Fig.: train loss (rolling mean), and the eval losses per fine-tuned arm: held-out wordings of
    trained facts (the selection set) and unseen facts (a curve only)."""
    if logs.empty:
        return placeholder("no fine-tuned arm ran: no training curves")
    logs = logs.sort_values(["arm", "step"]).copy()
    logs["train_loss_smooth"] = logs.groupby("arm")["train_loss"].transform(
        lambda s: s.rolling(max(1, smoothing), min_periods=1).mean()
    )
    panels = [
        ("train_loss_smooth", "train loss (smoothed)", "training"),
        ("eval_paraphrase_loss", "eval loss", "held-out wordings of trained facts (selection)"),
        ("eval_unseen_loss", "eval loss", "unseen facts"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharex=True)
    for i, (ax, (col, ylabel, title)) in enumerate(zip(axes, panels, strict=True)):
        d = logs.dropna(subset=[col])
        if d.empty:
            ax.text(0.5, 0.5, "not logged", ha="center", transform=ax.transAxes)
        else:
            sns.lineplot(
                data=d, x="step", y=col, hue="arm", ax=ax, lw=1, marker=None if i == 0 else "o", legend=i == 0
            )
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="small")
    if axes[0].get_legend() is not None:
        sns.move_legend(axes[0], "upper right", fontsize="x-small", title=None)
    fig.tight_layout()
    return fig


def ladder(
    acc: pd.DataFrame, arms: Sequence[str], rungs: Sequence[str], finetuned: Sequence[str]
) -> plt.Figure:
    """Fig.: each arm's accuracy on the rungs (trained facts verbatim, in a held-out wording, unseen
    facts) with Wilson intervals, one line per arm: where learning stops transferring."""
    d = acc[acc["eval_set"].isin(rungs) & acc["accuracy"].notna()] if len(acc) else acc
    if d.empty:
        return placeholder("no accuracy on the ladder's eval sets")
    x = {e: i for i, e in enumerate(rungs)}
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    palette = sns.color_palette(n_colors=len(arms))
    offsets = np.linspace(-0.12, 0.12, len(arms)) if len(arms) > 1 else [0.0]
    for arm, col, off in zip(arms, palette, offsets, strict=True):
        r = d[d["arm"] == arm]
        r = r.assign(x=r["eval_set"].map(x) + off).sort_values("x")
        if r.empty:
            continue
        y = 100 * r["accuracy"]
        ax.errorbar(
            r["x"],
            y,
            yerr=[(y - 100 * r["wilson_lo"]).clip(lower=0), (100 * r["wilson_hi"] - y).clip(lower=0)],
            marker="o" if arm in finetuned else "s",
            ms=4,
            capsize=2,
            lw=1.2,
            ls="-" if arm in finetuned else "--",
            color=col,
            label=arm,
        )
    ax.set_xticks(range(len(rungs)), [e.replace("_", "\n", 1) for e in rungs])
    ax.set_ylim(0, 100)
    ax.set_ylabel("judge accuracy (%)")
    ax.legend(fontsize="x-small", frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def ablations(
    acc: pd.DataFrame,
    families: Mapping[str, Mapping[str, float]],
    eval_sets: Sequence[str],
    replicates: Mapping[str, Sequence[str]] | None = None,
    labels: Mapping[str, str] | None = None,
    log_scale: Sequence[str] = (),
) -> plt.Figure:
    """Fig. 5: accuracy against each ablated hyperparameter (a config path) that has at least two arms;
    `labels` names the axes, `log_scale` lists the paths drawn on a log axis.

    Seed replicates of an arm in a family are drawn as hollow markers at its x, so the seed spread is
    visible next to the ablation effect.
    """
    if not families:
        return placeholder("no ablation with at least two arms ran")
    acc = acc[acc["accuracy"].notna()]
    fams = list(families)
    fig, axes = plt.subplots(1, len(fams), figsize=(3.3 * len(fams), 3.0), sharey=True, squeeze=False)
    palette = dict(zip(eval_sets, sns.color_palette(n_colors=len(eval_sets)), strict=True))
    for ax, fam in zip(axes.flat, fams, strict=True):
        members = families[fam]
        for e in eval_sets:
            rows = acc[(acc["eval_set"] == e) & acc["arm"].isin(members)].copy()
            if rows.empty:
                continue
            rows["x"] = rows["arm"].map(members)
            rows = rows.sort_values("x")
            y = 100 * rows["accuracy"]
            ax.errorbar(
                rows["x"],
                y,
                yerr=[
                    (y - 100 * rows["wilson_lo"]).clip(lower=0),
                    (100 * rows["wilson_hi"] - y).clip(lower=0),
                ],
                marker="o",
                ms=4,
                capsize=2,
                color=palette[e],
                label=e,
            )
            for arm, reps in (replicates or {}).items():
                if arm not in members:
                    continue
                rr = acc[(acc["eval_set"] == e) & acc["arm"].isin(reps[1:])]
                ax.scatter(
                    [members[arm]] * len(rr),
                    100 * rr["accuracy"],
                    facecolors="none",
                    edgecolors=palette[e],
                    s=22,
                    zorder=3,
                )
        if fam in log_scale:
            ax.set_xscale("log")
        # ticks at the values that ran (log minor labels would overlap)
        xs = sorted(set(members.values()))
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel((labels or {}).get(fam, fam))
        ax.set_ylim(0, 100)
    axes[0, 0].set_ylabel("judge accuracy (%)")
    axes[0, 0].legend(fontsize="x-small", frameon=False)
    fig.tight_layout()
    return fig


def judge_confusion(agreement: Mapping) -> plt.Figure:
    """Fig. 6: judge verdicts against the labels, with kappa and its CI in the title."""
    if not agreement.get("available"):
        return placeholder(f"judge agreement not available: {agreement.get('reason', 'unknown reason')}")
    block = agreement["blocks"][agreement["primary"]]
    if not block.get("confusion"):
        return placeholder(f"no confusion matrix in judge agreement block '{agreement['primary']}'")
    cm = np.array(block["confusion"])
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    sns.heatmap(
        cm,
        annot=True,
        fmt="d",
        cbar=False,
        cmap="Blues",
        ax=ax,
        xticklabels=["judge 0", "judge 1"],
        yticklabels=["label 0", "label 1"],
    )
    ci = block.get("kappa_ci")
    title = f"kappa = {block['kappa']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    ax.set_title(title, fontsize="small")
    fig.tight_layout()
    return fig
