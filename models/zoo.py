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
import models.baselines.checkpoint_import  # noqa: F401,E402
