"""The `refinenet` command (also `python -m refinenet`): one subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys


def cmd_info(args: argparse.Namespace) -> int:
    import torch
    import torchvision

    import refinenet

    print(f"refinenet {refinenet.__version__}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"device: cuda ({torch.cuda.device_count()}: {names})")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads); no CUDA device visible")
    for module, purpose in [
        ("pydensecrf.densecrf", "dense CRF post-processing (Table 4)"),
        ("h5py", "NYUDv2 .mat (v7.3) converter"),
        ("matio", "the authors' MatConvNet models (refinenet convert)"),
        ("bicubic_pytorch", "MATLAB imresize (the authors' models)"),
        ("scipy.io", "SBD / PASCAL-Context / SUN-RGBD .mat converters"),
        ("pandas", "result tables"),
        ("matplotlib", "plots"),
        ("nbclient", "executing notebooks"),
    ]:
        try:
            importlib.import_module(module)
            state = "ok"
        except Exception as err:  # any import failure is worth reporting, not raising
            state = f"missing ({type(err).__name__}: {err})"
        print(f"  {module:<22} {state:<10} {purpose}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refinenet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version, torch and device, which optional parts import")
    info.set_defaults(func=cmd_info)
    # Each area adds its own subcommands here (imported here, so that `convert` can run without them).
    from refinenet.convert import add_commands as add_convert_commands
    from refinenet.data.cli import add_commands as add_data_commands
    from refinenet.engine_cli import add_commands as add_engine_commands

    add_data_commands(sub)
    add_engine_commands(sub)
    add_convert_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["convert"]:  # without the other commands' imports: a conversion's memory is the weights'
        from refinenet.convert import main as convert_main

        return convert_main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
