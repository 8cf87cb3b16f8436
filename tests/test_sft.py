"""TRL's SFTConfig from our settings (reasoning_lab.sft): what both SFT stages train with."""

from reasoning_lab import model as M
from tests.helpers import make_config, sft_settings


def test_auto_attention_and_liger_pick_what_the_device_and_install_have():
    from reasoning_lab.sft import sft_arguments

    attention, liger_kernels = M.attention, M.liger_kernels
    assert attention("auto", cuda=True, flash=True) == "flash_attention_2"
    assert attention("auto", cuda=True, flash=False) == "sdpa"
    assert attention("auto", cuda=False, flash=True) == "eager"
    assert attention("sdpa", cuda=True, flash=True) == "sdpa"  # a named implementation is kept
    assert liger_kernels(cuda=True, installed=True) and not liger_kernels(cuda=False, installed=True)
    assert not liger_kernels(cuda=True, installed=False)
    args = sft_arguments("/tmp/unused", sft_settings(), max_steps=1, seed=0, report_to="none")
    assert args.use_liger_kernel is liger_kernels()
    assert make_config("model=llama3_2_3b").model.attn_implementation == "auto"
