"""Imports every model family so their `@register` lines run. One line per family."""
import models.psp  # noqa: F401
import models.cpsp  # noqa: F401
import models.baselines.av_att  # noqa: F401,E402
import models.baselines.avel  # noqa: F401,E402
import models.baselines.avsdn  # noqa: F401,E402
import models.baselines.cmbs  # noqa: F401,E402
import models.baselines.cmm  # noqa: F401,E402
import models.baselines.cmran  # noqa: F401,E402
import models.baselines.dmrn  # noqa: F401,E402
import models.weights.baselines  # noqa: F401,E402
import models.han  # noqa: F401  (HAN / MMIL_Net for AVVP)
import models.cpsp_avvp  # noqa: F401  (PSP / CPSP for AVVP)
import models.weights.han_checkpoint  # noqa: F401  (load_official archs han, psp_avvp, cpsp_avvp)
