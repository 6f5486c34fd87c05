"""Cost analysis: exact per-layer parameters, multiply-adds, memory and receptive field of any network.

``analyze(model_or_name, input_size)`` returns a ``CostReport``; ``lint`` checks the design principles of
"Rethinking the Inception Architecture" (Szegedy et al. 2016) on it. Conventions: ``cnnlab.analysis.ops``.
"""

from cnnlab.analysis.cost import analyze
from cnnlab.analysis.input_size import smallest_input
from cnnlab.analysis.meta import meta_copy
from cnnlab.analysis.ops import CONVENTIONS, Cost
from cnnlab.analysis.receptive_field import ReceptiveField, empirical_receptive_field
from cnnlab.analysis.report import CostReport, LayerCost

__all__ = ["CONVENTIONS", "Cost", "CostReport", "LayerCost", "ReceptiveField", "analyze", "empirical_receptive_field",
           "meta_copy", "smallest_input"]
