"""The lab: break a real cluster on purpose, see what happened, and check it.

``python -m vistrit chaos`` starts a cluster of real processes (:mod:`~vistrit.chaos.lab`),
each coordinator behind a relay of Vistrit's own (:mod:`~vistrit.chaos.relay`), and,
with ``--hosts netns``, each node in a network namespace of its own
(:mod:`~vistrit.chaos.hosts`). Clients submit tasks (:mod:`~vistrit.chaos.workload`,
running :mod:`~vistrit.chaos.work`) while a nemesis kills, pauses, partitions and slows
nodes on a schedule drawn from a seed (:mod:`~vistrit.chaos.nemesis`). Everything the
clients did and saw, every fault and every frame between nodes is written down
(:mod:`~vistrit.chaos.history`); the checker (:mod:`~vistrit.chaos.checker`) says whether
the history is that of a correct cluster, and the report (:mod:`~vistrit.chaos.report`)
draws it as a Lamport diagram. :mod:`~vistrit.chaos.run` ties them together.

Read next: :mod:`vistrit.chaos.history`.
"""
