def test_home_requires_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_login_then_home_lists_only_my_projects(client, world):
    response = client.post("/login/", {"username": "viewer", "password": "pw-viewer"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "Support Bot" in page
    assert "Other Co" not in page


def test_wrong_password_is_explained(client, world):
    response = client.post("/login/", {"username": "viewer", "password": "nope"})
    assert response.status_code == 200
    assert "Wrong username or password" in response.content.decode()
