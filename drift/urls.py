# Routes of the drift app; see README.
urlpatterns = []
