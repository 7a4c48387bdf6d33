# Routes of the slices app; see README.
urlpatterns = []
