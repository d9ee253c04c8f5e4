"""The same script on every backend: only the URL changes (docs/migrating.rst).

python3 areas.py vistrit://localhost:7878    # a Vistrit cluster (workers: --tasks shapes)
python3 areas.py local://4                   # four processes on this machine
python3 areas.py dask://localhost:8786       # a Dask cluster
"""

import concurrent.futures
import sys

import shapes

import vistrit


def main(url: str) -> None:
    with vistrit.executor(url) as pool:
        print(pool.submit(shapes.area, 3, 4.5).result(timeout=60))
        print(list(pool.map(shapes.area, [1, 2, 3], [4, 5, 6], timeout=60)))
        futures = [pool.submit(shapes.stats, [n, n + 1, n + 2]) for n in range(3)]
        for future in concurrent.futures.as_completed(futures, timeout=60):
            print(future.result())
        try:
            pool.submit(shapes.stats, []).result(timeout=60)
        except ValueError as error:
            print("failed as expected:", type(error).__name__)


if __name__ == "__main__":
    main(sys.argv[1])
