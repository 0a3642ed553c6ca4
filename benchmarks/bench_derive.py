"""Wall time of each ``kernelphase derive`` command and of ``--help``, cold, in a fresh process.

Prints each time against its target (2 s per derive command, 0.5 s for --help) and the ratio of
the in-process warm call (SymPy results cached) to the cold subprocess; then the time of a
200 x 200 Gram matrix from ``kernel_function`` (closed form and quadrature) and its error
against the closed form.
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
    "derive nngp relu": (["derive", "nngp", "--activation", "relu", "--json"], 2.0),
    "derive ntk tanh --u": (["derive", "ntk", "--activation", "tanh", "--u", "0.3", "--json"], 2.0),
    "derive spectrum eigf": (["derive", "spectrum", "--activation", "z + z**3/3", "--D", "3",
                              "--eigenfunctions", "--json"], 2.0),
}


def gram_timings(n=200, D=10):
    """Wall time of an n x n Gram (first call includes compilation / cache load)."""
    import numpy as np
    from kernelphase.kernels import kernel_function
    x = np.random.default_rng(0).standard_normal((n, D)) / np.sqrt(D)
    for act, kind, method in (("relu", "ntk", None), ("relu", "ntk", "quadrature"),
                              ("erf", "nngp", "quadrature"), ("tanh", "ntk", None)):
        t0 = time.perf_counter()
        k = kernel_function(act, kind, method=method)
        G = k(x)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        G = k(x)
        again = time.perf_counter() - t0
        err = ""
        if k.method == "quadrature" and act != "tanh":
            ref = kernel_function(act, kind)(x)
            err = f"   max rel. error vs closed {np.max(np.abs(G - ref) / (1 + np.abs(ref))):.1e}"
        print(f"{act:>5} {kind:<5} {k.method:<10} {n}x{n}: first {first:6.2f} s, "
              f"again {again * 1e3:8.1f} ms{err}")


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
    gram_timings()


if __name__ == "__main__":
    main()
