"""``tfcompress compress``: from a trained ``.keras`` to a small ``.tflite`` in one command (recipe or budget)."""

from __future__ import annotations

import argparse
import os
import shlex

from tfcompress.commands.core import (
    add_data_argument,
    add_device_arguments,
    non_negative_int,
    positive_float,
    positive_int,
)
from tfcompress.errors import TfcompressError


def recipes_help() -> str:
    """The built-in recipes, their stages and every stage option with its default (``--list-recipes``)."""
    from tfcompress.compress.recipes import BUILTIN_RECIPES, RECIPE_DESCRIPTIONS, STAGE_DEFAULTS

    lines = ["built-in recipes (compose with +, e.g. slim+dc, slim+pq, slim+int8, lowrank+int8, pruned+int8):"]
    for name, stages in BUILTIN_RECIPES.items():
        lines.append(f"  {name:8s} {' -> '.join(stages):14s} {RECIPE_DESCRIPTIONS[name]}")
    lines.append("stage options (override with --set METHOD.OPTION=VALUE or in a TOML recipe):")
    for method, options in STAGE_DEFAULTS.items():
        lines.append(f"  {method:8s} " + ", ".join(f"{k}={v}" for k, v in options.items()))
    return "\n".join(lines)


def _candidates(value: str | None) -> list[tuple[str, tuple[str, ...]]]:
    from tfcompress.compress.budget import DEFAULT_CANDIDATES

    if value is None:
        return list(DEFAULT_CANDIDATES)
    return [(name.strip(), ()) for name in value.split(",") if name.strip()]


def _compress(args: argparse.Namespace) -> None:
    if args.list_recipes:
        print(recipes_help())
        return
    if args.model is None or args.output is None:
        raise TfcompressError("give the input model and the output: tfcompress compress IN.keras -o OUT.tflite ...")
    command = shlex.join(getattr(args, "command_line", ["tfcompress", "compress"]))
    budget_mode = args.target_bytes is not None or args.target_speedup is not None
    if budget_mode:
        _budget(args, command)
        return
    if args.recipe is None:
        raise TfcompressError("give --recipe R (see --list-recipes), or a budget: --target-bytes / --target-speedup")
    from tfcompress.compress import compress
    from tfcompress.distribute import is_chief

    recipe = args.parsed_recipe
    print(f"recipe {recipe.describe()}", flush=True)
    result = compress(args.model, args.output, recipe, max_loss=args.max_loss, **_run_options(args, command))
    if is_chief(args.devices):
        _print_result(result)
        if result.lost_too_much and not args.allow_drop:
            raise TfcompressError(
                f"{result.lost_too_much}: {args.output} is written for inspection and its card says so; try a "
                "smaller amount (--set, e.g. prune.sparsity=0.5) or another recipe, or pass --allow-drop to accept it"
            )
    else:
        print(f"worker {args.devices.index} done: {result.tflite_bytes:,} bytes; worker 0 writes {args.output}")


def _check_options(args: argparse.Namespace) -> None:
    """Mistakes found from the options alone, before a worker joins its cluster, TensorFlow is imported or any
    folder is made: the recipe and every ``--set`` value are parsed here (``args.parsed_recipe``)."""
    from tfcompress.compress.recipes import load_recipe, with_overrides

    budget_mode = args.target_bytes is not None or args.target_speedup is not None
    args.parsed_recipe = None
    if args.recipe is not None and not budget_mode and not args.list_recipes:
        args.parsed_recipe = with_overrides(load_recipe(args.recipe), args.set or (), args.epochs)
    if budget_mode and (args.workers is not None or os.environ.get("TF_CONFIG")):
        raise TfcompressError(
            "a budget search runs on one machine (its choices follow latencies measured where it runs); "
            "use --workers with --recipe"
        )


def _run_options(args: argparse.Namespace, command: str) -> dict:
    """The keyword arguments a recipe run and a budget search take alike."""
    return {
        "data_dir": args.data,
        "work": args.work,
        "force": args.force,
        "devices": args.devices,
        "limit": args.limit,
        "seed": args.seed,
        "json_path": args.json,
        "latency_rounds": args.latency_rounds,
        "command": command,
        "teacher_path": args.teacher,
    }


def _print_result(result) -> None:
    base, out = result.measurements["input"], result.measurements["output"]
    print(
        f"wrote {result.output} ({out.bytes:,} bytes, {base.bytes / out.bytes:.1f}x smaller than the float file), "
        f"{result.keras_path} and {result.output.with_suffix('.md')}; "
        f"top-1 on test {100 * out.top1['test']:.2f}% (input {100 * base.top1['test']:.2f}%), "
        f"latency {out.latency_ms[1]:.2f} / {out.latency_ms[2]:.2f} ms at 1 / 2 threads "
        f"(input {base.latency_ms[1]:.2f} / {base.latency_ms[2]:.2f})"
    )


def _budget(args: argparse.Namespace, command: str) -> None:
    from tfcompress.compress.budget import Budget
    from tfcompress.compress.budget_run import compress_within_budget

    if args.recipe is not None:
        raise TfcompressError("--recipe and a budget exclude each other; the budget search tries the recipes itself")
    result, paths = compress_within_budget(
        args.model,
        args.output,
        Budget(args.target_bytes, args.target_speedup, args.max_drop),
        _candidates(args.candidates),
        epochs=args.epochs,
        explore=args.explore,
        **_run_options(args, command),
    )
    print(f"search table {paths.table}, plot {paths.plot}")
    if result.chosen is None:
        raise TfcompressError(result.verdict() + f"; see {paths.table}")
    print(f"wrote {args.output} ({result.chosen.name}) and its card {args.output.removesuffix('.tflite')}.md")


def add_commands(subparsers) -> None:
    """Add ``compress``."""
    from tfcompress.compress.recipes import BUILTIN_RECIPES

    recipes = ", ".join(BUILTIN_RECIPES)
    parser = subparsers.add_parser(
        "compress",
        help="compress, finetune (distilled from IN), convert and measure in one command: a recipe or a budget",
        description="Run a recipe (--recipe) or search the recipes for the smallest/fastest file within a budget "
        "(--target-bytes / --target-speedup with --max-drop). Writes OUT.tflite, OUT.keras and the card OUT.md; "
        "rerun the same command to resume.",
        epilog="Run with --list-recipes for the recipes and every stage option.",
    )
    parser.add_argument("model", metavar="IN.keras", nargs="?", help="the trained model (never modified)")
    parser.add_argument("-o", "--output", metavar="OUT.tflite", help="the .tflite to write (.keras, .md beside it)")
    parser.add_argument(
        "--recipe",
        metavar="R",
        help=f"built-in recipe ({recipes}), a composition like slim+dc, or a .toml file",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="METHOD.OPTION=VALUE",
        help="override a stage option, e.g. --set prune.sparsity=0.9 (repeatable)",
    )
    parser.add_argument(
        "--epochs",
        type=non_negative_int,
        help="finetuning epochs of every training stage (default: each stage's own, see --list-recipes)",
    )
    parser.add_argument(
        "--teacher", metavar="T.keras", help="distil every finetune from this model (default: IN.keras itself)"
    )
    add_data_argument(parser)
    parser.add_argument("--work", metavar="DIR", help="resumable state (default: OUT.work beside the output)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the result as JSON")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    budget = parser.add_argument_group("budget mode (instead of --recipe)")
    budget.add_argument("--target-bytes", type=positive_int, metavar="N", help="the file must be at most N bytes")
    budget.add_argument(
        "--target-speedup", type=positive_float, metavar="X", help="at least X times the input's speed at 1 thread"
    )
    budget.add_argument(
        "--max-drop", type=float, default=1.0, metavar="P", help="at most P points of val top-1 below the input"
    )
    budget.add_argument(
        "--candidates",
        metavar="R1,R2,...",
        help="recipes to try, in order of expected cost (default: a built-in list of 12 recipes and settings)",
    )
    budget.add_argument("--explore", action="store_true", help="train every feasible candidate (full Pareto plot)")
    add_device_arguments(parser)
    parser.add_argument(
        "--max-loss",
        type=positive_float,
        default=10.0,
        metavar="P",
        help="a recipe whose output loses more than P points of test top-1 (a loss its paired 95%% interval "
        "confirms) fails (non-zero exit, warning in the card) unless --allow-drop (default: 10)",
    )
    parser.add_argument(
        "--allow-drop", action="store_true", help="exit 0 even when the output loses more than --max-loss"
    )
    parser.add_argument("--limit", type=positive_int, help="use only this many images per split (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every stage")
    parser.add_argument("--latency-rounds", type=positive_int, default=7, help="interleaved latency rounds")
    parser.add_argument("--list-recipes", action="store_true", help="print the recipes and stage options, then exit")
    parser.set_defaults(handler=_compress, check_options=_check_options)
