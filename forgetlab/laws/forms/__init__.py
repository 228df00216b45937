"""The law forms: the interface (`base`) and one module per form, registered on import.

Importing this package imports every form module, each of which registers its class with
`base.register_form`; the forms import only `base`, so there is no cycle.

  base            LawForm, ParamSpec, Reference, Design, the registry, the forgetting variants
  linear          L_f = −c·L_ft + s (paper Eq. 4)
  linear_terms    linear plus a rank term d·ln(P/P0) (`linear-rank`), and an N term (`linear-rank-steps`)
  paper_joint     the paper's shifted power laws, L_ft and L_f jointly (a reconstruction)
  power_additive  L_f = E − A·P^(−α) − B·N^(−β) (saturates in N)
  unsaturated     forms that do not saturate in N: `log-steps`, `power-steps`
"""

from __future__ import annotations

from forgetlab.errors import UserError
from forgetlab.laws.forms import linear, linear_terms, paper_joint, power_additive, unsaturated  # noqa: F401  (registers)
from forgetlab.laws.forms.base import (  # noqa: F401  (re-exported)
    DEFAULT_VARIANT,
    FORGETTING_VARIANTS,
    Design,
    LawForm,
    ParamSpec,
    Reference,
    register_form,
    registered,
    weighted_line,
)


def law_names() -> tuple[str, ...]:
    """Every registered form, in a fixed (alphabetical) order."""
    return tuple(sorted(registered()))


def get_law(name: str) -> LawForm:
    forms = registered()
    if name not in forms:
        raise UserError(f"unknown law '{name}'; choose one of: {', '.join(sorted(forms))}")
    return forms[name]()
