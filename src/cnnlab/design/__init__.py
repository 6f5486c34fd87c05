"""Design transforms: apply the classic papers' design rules to a network and report what they buy.

Each transform takes a model, returns ``(new_model, TransformReport)`` and never modifies its input:
``factorize`` (5x5 -> two 3x3, n x n -> 1 x n + n x 1), ``add_bottleneck`` (1x1 reduction before an expensive
convolution), ``to_residual`` (identity shortcuts around pairs of convolutions), ``to_preactivation``
(post- to pre-activation residual units) and ``gap_head`` (flatten + fully connected -> global average pooling).
"""

from cnnlab.design.bottleneck import add_bottleneck
from cnnlab.design.factorize import factorize
from cnnlab.design.head import gap_head
from cnnlab.design.preact import to_preactivation
from cnnlab.design.recipe import apply_transforms, load_transformed, save_transformed
from cnnlab.design.report import Cost, Replacement, TransformReport
from cnnlab.design.residual import to_residual

__all__ = ["Cost", "Replacement", "TransformReport", "add_bottleneck", "apply_transforms", "factorize", "gap_head",
           "load_transformed", "save_transformed", "to_preactivation", "to_residual"]
