"""Design transforms: apply the classic papers' design rules to a network; ``compare`` measures what they buy.

Every transform is a ``select`` + ``replace`` on one driver, ``rewrite(model, select, replace)``, which works on
any network (a zoo model or an ``nn.Sequential`` of your own) and builds the new modules from ``cnnlab.blocks``.
Each takes a model and returns ``(new_model, RewriteRecord)`` without modifying its input or measuring anything:
``factorize`` (5x5 -> two 3x3, n x n -> n x 1 + 1 x n), ``add_bottleneck`` (1x1 reduction before an expensive
convolution), ``to_residual`` (identity shortcuts around pairs of convolutions), ``to_preactivation``
(post- to pre-activation residual units) and ``gap_head`` (flatten + fully connected -> global average pooling).
``compare(before, after, record)`` returns the TransformReport: parameters, MACs and receptive field.
"""

from cnnlab.design.bottleneck import add_bottleneck
from cnnlab.design.factorize import factorize
from cnnlab.design.head import gap_head
from cnnlab.design.preact import to_preactivation
from cnnlab.design.recipe import apply_transforms, load_transformed, save_transformed
from cnnlab.design.report import Cost, TransformReport, compare
from cnnlab.design.residual import to_residual
from cnnlab.design.rewrite import Replacement, RewriteRecord, Skip, rewrite

__all__ = ["Cost", "Replacement", "RewriteRecord", "Skip", "TransformReport", "add_bottleneck", "apply_transforms",
           "compare", "factorize", "gap_head", "load_transformed", "rewrite", "save_transformed",
           "to_preactivation", "to_residual"]
