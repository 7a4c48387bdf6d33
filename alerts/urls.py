# Routes of the alerts app; see README.
urlpatterns = []
