"""Functions a worker started with ``--tasks shapes`` may run (docs/calls.rst)."""


def area(width: float, height: float) -> float:
    """The area of a rectangle."""
    return width * height


def stats(numbers: list[float]) -> dict[str, float]:
    """The smallest, the largest and the mean of some numbers."""
    return {"min": min(numbers), "max": max(numbers), "mean": sum(numbers) / len(numbers)}
