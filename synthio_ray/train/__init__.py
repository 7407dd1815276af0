"""Training: aligning the text-to-audio model with Diffusion-DPO or ERM (``align.py``) on Ray Train.

``dpo.py`` pure loss and objective functions; ``t2a_model.py`` a Stable Audio pipeline made trainable
(LoRA or full DiT, frozen reference, merged export); ``preferences.py`` the preference set built with
the augmentation job's synthesis stage; ``align_loop.py`` the Ray Train worker loop; ``align.py`` the job.
"""
