"""The original TensorFlow 1.x tutorial, run through ``tf.compat.v1``, plus a TF2/Keras twin.

Never imports torch. ``model.py`` is the tutorial; ``keras_model.py`` its idiomatic TF2 form.
"""
