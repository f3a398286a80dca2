"""Command line: ``recsys generate | run | runs | batch | tune | experiment | keys | train | serve``.

    recsys generate --profile ci --seed 42 --out data/ci-42
    recsys run --profile thesis [--seeds 1,2,3] [-p test_days=21 ...] [--config my.toml]
    recsys runs list --profile ci
    recsys runs compare previous latest --profile ci [--rel-tol 1e-6]
    recsys runs prune --keep 5 --profile ci
    recsys batch --data data/ci-42 --out data/ci-42-batch [--engine spark --master local[2]]
    recsys tune --data data/ci-42 --budget 120 --out tuned.toml
    recsys export --database sqlite:///model/events.db --base model --out data/live [--cutoff EVENT_ID]
    recsys experiment start --model model/ --config experiment.toml      (stop --model model/)
    recsys experiment report --decisions model/decisions --data data/ci-42 [--experiment NAME] [--control VARIANT]

A user error (a bad argument, parameter, seed list, notebook selection,
configuration file, a missing or unwritable file or directory) prints one
line naming it and exits with status 2; Ctrl-C prints one line and exits
with status 130. ``--help`` of every subcommand shows the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from recsys.cli_types import dataset_dir, out_dir, out_file
from recsys.config import ConfigError

USAGE_ERRORS: tuple[type[Exception], ...] = (ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                             PermissionError, FileExistsError)
"""Exceptions that are the user's mistake: one line on stderr, exit status 2 (extended in :func:`main`)."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written; every option's default in its help."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (``recsys: error: ...``) and exits 2;
    ``--help`` shows the defaults."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds:
        raise argparse.ArgumentTypeError("name at least one seed")
    return seeds


def _version() -> str:
    """The source tree's version (:mod:`recsys._version`; the installed metadata is read from it)."""
    from recsys._version import __version__

    return __version__


def _generate(args: argparse.Namespace) -> int:
    from recsys.data.cache import resolve_params
    from recsys.data.synthetic_stream import STREAMED_PROFILES, generate_main

    if args.profile in STREAMED_PROFILES:  # too large for memory: partitioned parquet, chunk by chunk
        return generate_main(args.profile, args.seed, Path(args.out), args.quiet)
    from recsys.data.synthetic import generate
    from recsys.runs.progress import Steps

    steps = Steps("generate", enabled=not args.quiet)
    with steps.step(f"generate profile {args.profile}, seed {args.seed}"):
        dataset = generate(**resolve_params(args.profile, args.seed), progress=not args.quiet)
    dataset.meta["profile"] = args.profile
    with steps.step(f"save to {args.out}"):
        out = dataset.save(Path(args.out))
    rows = ", ".join(f"{name}={len(getattr(dataset, name)):,}" for name in ("users", "products", "events"))
    print(f"wrote {out} ({rows}; content hash {dataset.content_hash()[:12]})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from recsys.runs.runner import main_run

    return main_run(args)


def _runs(args: argparse.Namespace) -> int:
    """``recsys runs list | compare A B | prune --keep N`` over ``<reports>/<profile>/runs/``."""
    import json

    from recsys.runs import history, project_paths

    profile_dir = project_paths.reports_root(args.reports) / args.profile
    if args.runs_command == "list":
        runs = history.list_runs(profile_dir)
        if args.json:
            print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in runs], indent=2))
        else:
            print(f"{profile_dir / history.RUNS}  (* = {history.LATEST})")
            print(history.format_runs(runs))
        return 0
    if args.runs_command == "compare":
        a, b = history.resolve_run(profile_dir, args.a), history.resolve_run(profile_dir, args.b)
        comparison = history.compare_runs(a, b, rel_tol=args.rel_tol, abs_tol=args.abs_tol)
        print(json.dumps(comparison.as_dict(), indent=2, default=str) if args.json
              else history.format_comparison(comparison))
        return 0
    removed = history.prune(profile_dir, args.keep, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(removed)} run(s) of {profile_dir / history.RUNS}" + "".join(f"\n  {p.name}" for p in removed))
    return 0


def _with_stage2_steps(func: Any, job: str) -> Any:
    """``func`` (a subcommand) with a step line per Stage 2 step on stderr (``recsys train`` runs the job)."""

    def run(args: argparse.Namespace) -> int:
        from recsys.runs.progress import Steps, timed_table
        from recsys.stage2.job import STEPS

        steps = Steps(job)
        with timed_table(STEPS, steps):
            return func(args)

    return run


def _batch(args: argparse.Namespace) -> int:
    from recsys.runs.progress import Steps, timed_table
    from recsys.stage2.job import STEPS, batch_main

    steps = Steps("batch", enabled=not args.quiet)
    if args.engine == "spark":
        from recsys.spark.job import spark_batch_main

        with steps.step(f"Spark job on {args.master}"):
            path = spark_batch_main(args.data, Path(args.out), args.master, args.shuffle_partitions,
                                    args.driver_memory)
    else:
        with timed_table(STEPS, steps):  # a line per Stage 2 step (svd, segments, demand, seasonality)
            path = batch_main(Path(args.data), Path(args.out))
    print(f"batch artifacts: {path} ({time.perf_counter() - steps.started:.1f} s"
          + "".join(f"; {name} {sec:.1f} s" for name, sec in steps.seconds.items()) + ")")
    return 0


def _export(args: argparse.Namespace) -> int:
    from recsys.store.training import export_main

    try:
        data = export_main(args.database, args.base, Path(args.out), args.cutoff)
    except (ValueError, FileNotFoundError) as err:
        print(f"recsys export: error: {err}", file=sys.stderr)
        return 2
    r = data.report
    dropped = ", ".join(f"{k}: {v:,}" for k, v in r["stored_events_dropped"].items())
    print(f"wrote {args.out} ({r['users']:,} users, {r['products']:,} products, {r['events']:,} events: "
          f"{r['base_events']:,} base + {r['stored_events_used']:,} stored through event id {r['cutoff_event_id']}; "
          f"dropped {dropped}; incomplete new products dropped: {r['new_products_dropped_incomplete']:,}; "
          f"users given default profile fields: {r['users_defaulted']:,})")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from recsys.research.tuning import tune_main

    return tune_main(args)


def _add_export(sub: argparse._SubParsersAction) -> None:
    """``recsys export``: the base data set plus the event store as a data set directory."""
    export = sub.add_parser("export", help="write the base data set plus the event store as a data set directory")
    export.add_argument("--database", default=None, metavar="URL",
                        help="sqlite:///FILE or postgresql://... (default: the model directory's events.db)")
    export.add_argument("--base", required=True,
                        help="the base data set: a data set directory, or a model directory (its base/)")
    export.add_argument("--out", required=True, help="data set directory to write (recsys train --data, recsys batch)")
    export.add_argument("--cutoff", type=int, default=None, metavar="EVENT_ID",
                        help="include stored events with id <= EVENT_ID (default: every committed event)")
    export.set_defaults(func=_export)


def _experiment_set(args: argparse.Namespace) -> int:
    """Publish the model directory's engine with an experiment started (from a TOML file) or stopped."""
    import tomllib

    from recsys.deals.experiment import ExperimentConfig
    from recsys.serialization import config_from_json
    from recsys.serving.model_dir import load_current, save_engine

    if args.action == "start":
        try:
            with open(args.config, "rb") as handle:
                experiment = config_from_json(ExperimentConfig, tomllib.load(handle))
        except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError) as error:
            raise ConfigError(f"--config {args.config}: {error}") from None
    else:
        experiment = ExperimentConfig()
    engine, _ = load_current(args.model)
    engine.deal_policy(experiment=experiment)
    version = save_engine(engine, args.model)
    what = f"experiment {experiment.name!r} ({', '.join(v.name for v in experiment.variants)})" \
        if experiment.active else "no experiment"
    print(f"{args.model}: engine version {version} serves {what} (services started from it; a running one: PUT /experiment)")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    import pandas as pd

    from recsys.data.dataset import Dataset
    from recsys.research.experiment_report import report_from_files

    try:
        events = Dataset.load(args.data).events
        table = report_from_files(args.decisions, events, args.experiment, args.control, args.n_boot)
    except (ValueError, FileNotFoundError) as error:
        print(f"recsys experiment report: error: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


def _add_experiment_commands(sub: Any) -> None:
    """``recsys experiment report | start | stop``."""
    experiment = sub.add_parser("experiment", help="A/B experiments on deal policies")
    experiment_sub = experiment.add_subparsers(dest="action", required=True, parser_class=_Parser)
    report = experiment_sub.add_parser("report", help="per-variant conversions, revenue and margin with intervals")
    report.add_argument("--decisions", required=True, help="decision log folder (recsys.deals.decision_log)")
    report.add_argument("--data", required=True, help="a data set directory whose events hold the outcomes")
    report.add_argument("--experiment", default=None, help="only this experiment's variants")
    report.add_argument("--control", default=None, help="the control variant (default: first by name)")
    report.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    report.add_argument("--out", default=None, help="also write the table as CSV here")
    report.set_defaults(func=_experiment)
    start = experiment_sub.add_parser("start", help="serve an A/B experiment (TOML) from a model directory")
    start.add_argument("--model", required=True, help="model directory (recsys train --out)")
    start.add_argument("--config", required=True, metavar="FILE.toml",
                       help="name, salt and [[variants]] (name, share, use_price_sensitivity, [variants.exploration])")
    start.set_defaults(func=_experiment_set)
    stop = experiment_sub.add_parser("stop", help="end the A/B experiment of a model directory")
    stop.add_argument("--model", required=True, help="model directory (recsys train --out)")
    stop.set_defaults(func=_experiment_set)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="recsys", description=__doc__)
    parser.add_argument("--version", action="version", version=f"recsys {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate", help="generate a synthetic data set and save it as parquet")
    gen.add_argument("--profile", choices=["ci", "thesis", "large", "xl"], default="ci", help="size of the data set")
    gen.add_argument("--seed", type=int, default=42, help="seed of the generator")
    gen.add_argument("--out", required=True, type=out_dir("--out"), help="output directory")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    run = sub.add_parser("run", help="execute all numbered notebooks with papermill into reports/<profile>/")
    run.add_argument("--profile", choices=["ci", "thesis", "large"], default="thesis", help="size of the data set")
    run.add_argument("--seeds", type=_seed_list, default=None, help="comma-separated seeds, e.g. 1,2,3 (default 42)")
    run.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE",
                     help="set a notebook parameter (repeatable), typed like its default in each notebook that "
                          "declares it: -p svd_ranks=5,10,20 gives a tuple of ints")
    run.add_argument("--config", default=None, metavar="FILE.toml",
                     help="configuration file (recsys.config_file format); validated, copied into the report")
    run.add_argument("--notebooks", default=None, help="comma-separated notebook numbers or names (default: all)")
    run.add_argument("--notebooks-dir", default=None, help="folder of the NN_*.ipynb notebooks (default: ./notebooks)")
    run.add_argument("--reports", default=None, help="reports root (default: ./reports)")
    run.add_argument("--data", default=None, help="data cache directory (default: ./data)")
    run.add_argument("--quiet", action="store_true", help="one line per notebook, no progress line per cell")
    run.set_defaults(func=_run)

    runs = sub.add_parser("runs", help="the kept runs of a profile: list, compare two, prune old ones")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    for name, text in (("list", "every run, oldest first; * marks latest"),
                       ("compare", "what changed from run A to run B: metrics, figures, settings, environment"),
                       ("prune", "delete all but the newest N runs (never the one latest points to)")):
        cmd = runs_sub.add_parser(name, help=text)
        cmd.add_argument("--profile", choices=["ci", "thesis", "large"], default="thesis")
        cmd.add_argument("--reports", default=None, help="reports root (default: ./reports or $RECSYS_REPORTS)")
        if name == "compare":
            cmd.add_argument("a", help="run id, unique prefix, 'latest', 'previous' or a run folder")
            cmd.add_argument("b", help="the same for the second run")
            cmd.add_argument("--rel-tol", type=float, default=1e-6, help="relative tolerance of a metric")
            cmd.add_argument("--abs-tol", type=float, default=1e-9, help="absolute tolerance of a metric")
        if name == "prune":
            cmd.add_argument("--keep", type=int, required=True, help="runs to keep (at least 1)")
            cmd.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
        if name in ("list", "compare"):
            cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.set_defaults(func=_runs)

    batch = sub.add_parser("batch", help="recompute all Stage 2 artifacts atomically")
    batch.add_argument("--data", required=True, type=dataset_dir("--data"),
                       help="a directory written by Dataset.save / recsys generate")
    batch.add_argument("--out", required=True, type=out_dir("--out"), help="artifact directory (versions + LATEST pointer)")
    batch.add_argument("--engine", choices=["memory", "spark"], default="memory",
                       help="memory: pandas/scipy in this process; spark: Apache Spark (pip install recsys[spark])")
    batch.add_argument("--master", default="local[2]", help="Spark master: local[n], spark://host:port, yarn, k8s://...")
    batch.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions (Spark only)")
    batch.add_argument("--driver-memory", default="2g", help="spark.driver.memory (Spark only)")
    batch.add_argument("--quiet", action="store_true", help="no step lines on stderr")
    batch.set_defaults(func=_batch)

    _add_export(sub)

    from recsys.service.cli import add_service_commands  # keys, train, serve

    add_service_commands(sub)
    train = sub.choices["train"]
    train.set_defaults(func=_with_stage2_steps(train.get_default("func"), "train"))

    tune = sub.add_parser("tune", help="tune k-NN, PureSVD and fusion weights on a validation window; write TOML")
    tune.add_argument("--data", required=True, type=dataset_dir("--data"),
                      help="a directory written by Dataset.save / recsys generate")
    tune.add_argument("--budget", type=float, default=120.0, help="search wall-time budget in seconds")
    tune.add_argument("--trials", type=int, default=60, help="at most this many trials")
    tune.add_argument("--seed", type=int, default=42, help="seed of the TPE sampler")
    tune.add_argument("--validation-days", type=float, default=28.0, help="validation window at the end of the data")
    tune.add_argument("--out", required=True, type=out_file("--out"), help="configuration file to write (.toml)")
    tune.add_argument("--quiet", action="store_true", help="no progress line per trial on stderr")
    tune.set_defaults(func=_tune)

    _add_experiment_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from recsys.runs.history import HistoryError
    from recsys.runs.parameters import ParameterError
    from recsys.runs.runner import UsageError

    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("recsys: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.func(args) or 0)
    except (*USAGE_ERRORS, ParameterError, UsageError, HistoryError) as error:
        print(f"recsys {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # a command whose extra is not installed: say which one
        from recsys.third_party import missing_extra

        message = missing_extra(error)
        if message is None:
            raise
        print(f"recsys {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recsys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
