"""Tiny text-to-audio pipelines: Stable Audio Open (``t2a``) and Stable Audio 3 (``t2a3``) in diffusers' layout."""
from __future__ import annotations

from pathlib import Path

from synthio_ray.zoo.common import T2A_LATENT_FRAMES, T2A_SAMPLE_RATE, _seed, _unzero
from synthio_ray.zoo.vocab import make_gemma_tokenizer, make_t5_tokenizer


def build_t2a(out: str | Path) -> Path:
    """Write a tiny Stable Audio Open ``StableAudioPipeline`` (stereo, 16 kHz, max 4.096 s) to ``out``."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel

    out = Path(out)
    tokenizer = make_t5_tokenizer(model_max_length=64)
    text_dim, cond_dim, latent_ch = 32, 64, 8

    _seed(1)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_dim,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="relu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    _seed(2)
    projection_model = StableAudioProjectionModel(
        text_encoder_dim=text_dim, conditioning_dim=cond_dim, min_value=0, max_value=512
    )
    _seed(3)
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * latent_ch,  # mean and scale
        downsampling_ratios=[2, 4, 4, 8],  # hop 256
        channel_multiples=[1, 2, 4, 8],
        decoder_channels=8,
        decoder_input_channels=latent_ch,
        audio_channels=2,
        sampling_rate=T2A_SAMPLE_RATE,
    )
    _seed(4)
    transformer = StableAudioDiTModel(
        sample_size=T2A_LATENT_FRAMES,
        in_channels=latent_ch,
        num_layers=2,
        attention_head_dim=32,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=latent_ch,
        cross_attention_dim=64,
        time_proj_dim=32,
        global_states_input_dim=2 * cond_dim,
        cross_attention_input_dim=cond_dim,
    )
    _unzero(transformer)
    scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500,
        sigma_data=1.0,
        sigma_schedule="exponential",
        num_train_timesteps=1000,
        solver_order=2,
        prediction_type="v_prediction",
        rho=7.0,
        solver_type="midpoint",
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
    )
    pipe = StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(out)
    return out


def build_t2a3(out: str | Path) -> Path:
    """Write a tiny ``StableAudio3Pipeline`` (stereo, 16 kHz, hop 256, T5Gemma text encoder) to ``out``."""
    from diffusers import (
        AutoencoderSAME,
        FlowMatchEulerDiscreteScheduler,
        StableAudio3DiTModel,
        StableAudio3DurationEmbedder,
        StableAudio3Pipeline,
    )
    import torch
    from transformers import T5GemmaConfig, T5GemmaEncoderModel

    out = Path(out)
    tokenizer = make_gemma_tokenizer(model_max_length=256)
    text_dim, latent_dim = 64, 16

    module = dict(
        vocab_size=len(tokenizer),
        hidden_size=text_dim,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    _seed(11)
    text_encoder = T5GemmaEncoderModel(
        T5GemmaConfig(encoder=module, decoder=dict(module), is_encoder_decoder=False, vocab_size=len(tokenizer))
    ).eval()
    _seed(12)
    duration_embedder = StableAudio3DurationEmbedder(output_dim=text_dim, fourier_dim=64, min_val=0.0, max_val=384.0)
    _seed(13)
    vae = AutoencoderSAME(
        audio_channels=2,
        patch_size=16,
        encoder_channels=16,
        encoder_c_mults=[2],
        encoder_strides=[16],  # hop 16 * 16 = 256
        encoder_transformer_depths=[1],
        latent_dim=latent_dim,
        dim_heads=16,
        ff_mult=2,
        sampling_rate=T2A_SAMPLE_RATE,
    )
    _unzero(vae)
    with torch.no_grad():  # decoder output tokens start at 1e-5: near-silent audio; ~0.1 rms with this
        for block in vae.decoder.modules():
            if hasattr(block, "new_tokens"):
                block.new_tokens.normal_(0.0, 0.15)
    _seed(14)
    transformer = StableAudio3DiTModel(
        io_channels=latent_dim,
        patch_size=1,
        embed_dim=64,
        depth=2,
        num_heads=2,
        cond_token_dim=text_dim,
        global_cond_dim=text_dim,
        local_add_cond_dim=latent_dim + 1,  # inpaint: [mask, masked latent]
        timestep_features_dim=32,
        ff_mult=2.0,
        num_memory_tokens=4,
    )
    _unzero(transformer)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0, stochastic_sampling=True)
    pipe = StableAudio3Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        duration_embedder=duration_embedder,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(out)
    return out
