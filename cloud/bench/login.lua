-- wrk script: POST /auth/login with a fixed account (argon2id-bound).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench-customer@gatehouse.test","password":"bench-password-1"}'
