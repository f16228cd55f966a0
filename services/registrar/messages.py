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
    "no_dhis2": "Chưa có dữ liệu tử vong từ DHIS2 trong kho (chưa kết nối); danh sách trống.",
}
OUTCOME = {
    200: "ok",
    201: "ok",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
}
