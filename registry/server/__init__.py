"""The registry server: Flask app factory, configuration, SQL models, storage backends, services and blueprints."""
