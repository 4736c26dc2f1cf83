"""Lipschitz certificates: operator norms (``norms``), the segment analysis and product bound (``segments``,
``analysis``), LipSDP (``lipsdp``), the global bound (``global_bound``), local bounds (``local``), radii
(``radii``), their result types (``results``), float64 logits and gradient norms (``evaluate``), the CLEVER
estimate (``clever``) and the fast path for robustness specs (``fastpath``)."""
