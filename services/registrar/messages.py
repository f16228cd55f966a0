"""What registrars read (Vietnamese) and the audit outcome of each status code."""

MSG = {
    "unauthenticated": "Chưa xác thực hoặc mã truy cập không hợp lệ/đã hết hạn.",
    "not_found": "Không tìm thấy Giấy chứng sinh/Giấy báo tử trong phạm vi quản lý của cơ quan.",
    "used": "Giấy này đã được sử dụng để đăng ký hộ tịch, không thể sử dụng lại. "
    "Nếu có sai sót, hãy hủy đăng ký (kèm lý do) trước.",
    "not_used": "Giấy này chưa được sử dụng để đăng ký hộ tịch nên không có đăng ký nào để hủy.",
    "invalid": "Dữ liệu yêu cầu không hợp lệ.",
    "forbidden": "Xã/phường yêu cầu nằm ngoài phạm vi quản lý của cơ quan.",
    "error": "Lỗi hệ thống, vui lòng thử lại sau.",
    "rate_limited": "Quá nhiều yêu cầu, vui lòng thử lại sau.",
    "revoked": "Mã truy cập đã bị thu hồi.",
    "not_your_office": "Chỉ cơ quan đã đăng ký mới được hủy đăng ký này.",
    "replayed": "Đăng ký này (số đăng ký cho giấy này) đã được ghi nhận trước đây và đã bị hủy; không thể ghi lại.",
    "registered_before_issue": "Ngày đăng ký không được trước ngày cấp giấy.",
    "no_dhis2": "Chưa có dữ liệu tử vong từ DHIS2 trong kho (chưa kết nối); danh sách trống.",
}
OUTCOME = {
    200: "ok",
    201: "ok",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    400: "invalid",
    408: "invalid",
    413: "invalid",
    422: "invalid",
    429: "rate_limited",
}
