"""Wall time of each ``kernelphase derive`` command and of ``--help``, cold, in a fresh process.

Prints each time against its target (2 s per derive command, 0.5 s for --help) and the ratio of
the in-process warm call (SymPy results cached) to the cold subprocess.
"""
import subprocess
import sys
import time

CMDS = {
    "--help": (["--help"], 0.5),
    "derive ntk": (["derive", "ntk", "--activation", "z + eps*z**2/2", "--param", "eps=0.25",
                    "--json"], 2.0),
    "derive spectrum": (["derive", "spectrum", "--activation", "z + eps*z**2/2", "--param",
                         "eps=0.25", "--D", "100", "--json"], 2.0),
    "derive action cubic": (["derive", "action", "cubic", "--json"], 2.0),
}


def main():
    from io import StringIO
    from contextlib import redirect_stdout
    from kernelphase.cli import main as cli
    for name, (argv, target) in CMDS.items():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from kernelphase.cli import main; "
                        "sys.exit(main(sys.argv[1:]))", *argv], capture_output=True, check=False)
        cold = time.perf_counter() - t0
        warm = float("nan")
        if name != "--help":
            with redirect_stdout(StringIO()):
                cli(argv)
                t0 = time.perf_counter()
                cli(argv)
            warm = time.perf_counter() - t0
        print(f"{name:<22} cold {cold:6.2f} s (target {target} s)   warm in-process {warm * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
